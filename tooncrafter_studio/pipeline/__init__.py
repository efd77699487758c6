"""Jobs and the job runner shared by the CLI and the GUI worker (jobs.py, runner.py)."""
