"""Generated gRPC stubs (scripts/gen_protos.py) and the conversions between them and Python."""
