"""Dataset tools: synthetic generation, merge, convert and audit of YOLO datasets."""
