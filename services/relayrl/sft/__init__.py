"""The supervised stages of the R1 pipeline: cold-start SFT (`train`) and rejection-sampling
distillation (`distill`: a teacher's verified-correct samples become a student's SFT data)."""
