"""Exports of a config, one module per target format (DESIGN.md section 2).

* :mod:`~quantmoo.export.onnx_qdq` - an ONNX QDQ model onnxruntime runs (``export --format onnx``).
"""
