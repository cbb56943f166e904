"""The shop's KPIs: the core's and every enabled plugin's, as the ``kpis`` hook offers them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from server.hooktypes import CORE, Kpi
from server.plugins import PluginError, PluginRuntime

_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")


def registered_kpis(plugins: PluginRuntime) -> Mapping[str, Kpi]:
    """Every KPI by key: the core's first, then the plugins' in the order they offered them
    (pluggy asks the plugins registered last first). A key used twice, a malformed
    key, or a plugin's key outside its own ``<plugin>.`` namespace is a :class:`PluginError`
    naming the plugins (raised at start-up, like a schema clash)."""
    found: dict[str, Kpi] = {}
    owner: dict[str, str] = {}
    answers = sorted(plugins.call_sync("kpis"), key=lambda answer: answer[0] != CORE)
    for plugin, kpis in answers:
        for kpi in kpis:
            if not _KEY.fullmatch(kpi.key):
                raise PluginError(
                    f"plugin {plugin!r} offers KPI {kpi.key!r}: a key is lower_snake_case "
                    "words, a plugin's prefixed with its name and a dot"
                )
            if plugin != CORE and not kpi.key.startswith(f"{plugin}."):
                raise PluginError(
                    f"plugin {plugin!r} offers KPI {kpi.key!r}: its keys must start "
                    f"with {plugin + '.'!r}"
                )
            if kpi.key in found:
                raise PluginError(
                    f"KPI {kpi.key!r} is offered twice (by {owner[kpi.key]!r} and {plugin!r})"
                )
            found[kpi.key] = kpi
            owner[kpi.key] = plugin
    return found
