"""The painted widgets and the pixels behind them: viewer, exposure sheet, sketch row, image loading."""
