"""Reports: the versioned JSON (the source of truth), its CSV and Markdown, and the plot."""
