"""The networks: UNet, autoencoder, CLIP, resampler, attention, the sketch encoder, config and schedule.

Pure modules: no file reading, no sampling loop; everything above builds on these."""
