"""int8 / fp16 quantization."""
