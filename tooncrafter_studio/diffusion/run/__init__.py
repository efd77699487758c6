"""Running a generation: the pipeline that owns its components, memory placement, compile, preprocessing."""
