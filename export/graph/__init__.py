"""The pieces of the fused ONNX file: backbone and head graphs, the novelty score, fusion with the card, parity.

:mod:`.backbone`, :mod:`.head`, :mod:`.novelty`, :mod:`.fuse` and :mod:`.parity`; :mod:`hema.export.fused_model`
puts them together. Nothing is imported here, so that ``hema-export --help`` loads neither onnx nor torch.
"""
