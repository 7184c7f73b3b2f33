"""`doorbuster`: the operators' command line (queues, pools, campaigns, dead letters)."""
