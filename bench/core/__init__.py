"""The bottom layer, used by every other package and importing none of them: user errors, logging
and progress, files written atomically, thread configuration, the environment probe (machine, CPU,
versions), the TVM environments this checkout knows (0.27, 0.19), durations, Markdown tables, and the
known harmless warnings kept off the console (quiet)."""
