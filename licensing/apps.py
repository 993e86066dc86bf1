from django.apps import AppConfig
from django.core.signals import setting_changed

_KEY_SETTINGS = {"KEY_ID", "KEYS_DIR", "PRIVATE_KEY_PATH", "PRIVATE_KEY_PASSPHRASE"}


def _reload_keys(*, setting, **kwargs):
    if setting in _KEY_SETTINGS:
        from licensing import signing

        signing.reset()


class LicensingConfig(AppConfig):
    name = "licensing"

    def ready(self) -> None:
        setting_changed.connect(_reload_keys, dispatch_uid="licensing.reload_keys")
