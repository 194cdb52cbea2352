"""What `dvc plots show` draws from: the plot data tables and the offline page."""
