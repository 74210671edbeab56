"""A misspelt command-line override gets the project's did-you-mean, not Hydra's "use +".

Hydra answers ``model.hiden_size=32`` with "Could not override ... To append to your config use
+model.hiden_size=32", advice that would add a key no stage understands. ``install`` wraps the
step of Hydra's config loader that applies overrides so that the same error names the closest
existing key instead. The Hydra app installs it on import; ``dvc exp run -S`` composes ``conf/``
in DVC's own process, which imports the Hydra plugins found in the repository
(``hydra_plugins/rnnlab_overrides.py`` installs it there).
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from rnnlab.config import unknown_key_message

    apply = ConfigLoaderImpl._apply_overrides_to_config
    if getattr(apply, "did_you_mean", False):
        return

    def apply_with_did_you_mean(overrides: list[Any], cfg: Any) -> None:
        try:
            apply(overrides, cfg)
        except ConfigCompositionException as err:
            cause = err.__cause__
            if not isinstance(cause, ConfigAttributeError | ConfigKeyError):
                raise
            raise ConfigCompositionException(
                unknown_key_message(str(cause.full_key), cfg)
            ) from None

    apply_with_did_you_mean.did_you_mean = True  # type: ignore[attr-defined]
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_with_did_you_mean)
