"""What the commands run: the run plan (`config`), one cell's steps (`cell`, `execute`), the matrix
with its isolation and environments (`runner`), tuning within a budget (`autotune`), and the
workflows built on the same steps: pass ablations, generation, bundles, Relay cells, timer checks."""
