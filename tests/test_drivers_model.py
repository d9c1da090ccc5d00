"""The model test of the issue, through each driver: random layer sequences (files,
directories, whiteouts, opaque directories, hardlinks) applied as a chain of driver
layers give, at the top layer's mount, the tree an in-memory model predicts."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oci_storage.drivers import select_driver
from oci_storage.errors import DriverNotSupportedError

from .hostile_layers import TarBuilder
from .peers import REQUIRE, require_root
from .test_apply import _model_apply, _op, _tree_latin1


def _usable(name: str) -> None:
    require_root("layers with owners and (overlay) mounts")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            select_driver(tmp, name)
        except DriverNotSupportedError as exc:
            if REQUIRE:
                pytest.fail(f"{name} driver not usable here: {exc}")
            pytest.skip(f"{name} driver not usable here: {exc}")


@pytest.mark.parametrize("name", ["vfs", "overlay"])
def test_layer_chains_match_the_model(name: str) -> None:
    _usable(name)

    @settings(max_examples=30, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.lists(_op, max_size=10), min_size=1, max_size=4))
    # an opaque directory inside another, both made opaque by one layer (found here)
    @example(layers=[[("dir", "a/a", "a", b"")],
                     [("opaque", "a/a", "a", b""), ("opaque", "a", "a", b"")]])
    def check(layers: list[list[tuple[str, str, str, bytes]]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            driver = select_driver(tmp, name)
            state: dict[str, bytes | None] = {}
            parent: str | None = None
            for n, ops in enumerate(layers):
                builder = TarBuilder()
                _model_apply(state, ops, builder, as_diffs=True)
                layer_id = f"{n + 1:064x}"
                driver.create(layer_id, parent)
                driver.apply_diff(layer_id, io.BytesIO(builder.build()))
                parent = layer_id
            # as a container sees it: an empty read-write layer on top of the chain
            container = "c" * 64
            driver.create(container, parent)
            mounted = Path(driver.mount(container))
            try:
                expected = {p: "<dir>" if v is None else v.decode("latin-1")
                            for p, v in state.items()}
                assert _tree_latin1(mounted) == expected
            finally:
                driver.unmount(container)
            driver.remove(container)
            for n in range(len(layers), 0, -1):
                driver.remove(f"{n:064x}")

    check()
