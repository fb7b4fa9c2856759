"""Distillation training: data, LLM teacher, cross-encoder student, losses, ONNX export."""
