"""Looking at finished runs: compare (one table of many run folders), plots, evaluate (mAP and the
guide's accuracy of weights on a split), predict (drawn detections) and gallery (image grids)."""
