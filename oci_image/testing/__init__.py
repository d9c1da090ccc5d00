"""Test kit for users of ``oci_image``: Hypothesis strategies for the spec model
(:mod:`oci_image.testing.strategies`). Importing it requires ``hypothesis``."""
