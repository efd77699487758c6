"""The docked panels beside the viewer: segment inspector, takes, jobs, log."""
