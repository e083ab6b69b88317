"""Metrics: the table of measures, the ranked hits they read, trec_eval-exact scoring of runs and rankings."""
