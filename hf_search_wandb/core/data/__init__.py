"""Data: the one input check, BEIR folders and Hub layouts, first-stage candidates, hard negatives."""
