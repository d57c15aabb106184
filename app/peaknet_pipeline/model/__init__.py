"""PeakNet: ConvNeXtV2 backbone, BiFPN, segmentation head; loads upstream PeakNet state dicts unchanged."""
