"""Every engine test runs under both drivers: the fast driver (the engine steps the actors'
coroutines) and the trio-task reference driver must behave identically."""

from __future__ import annotations

import pytest

from emulator.engine import sim as sim_module


@pytest.fixture(autouse=True, params=sim_module.DRIVERS)
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sim_module, "DEFAULT_DRIVER", request.param)
    return request.param
