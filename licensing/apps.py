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
        from aegis.core import metrics
        from licensing import rules
        from licensing.models import LicenseType

        setting_changed.connect(_reload_keys, dispatch_uid="licensing.reload_keys")
        # The metrics' label values are this app's: every one shows from the start, and
        # each action's codes are those licensing/rules.py says it may answer.
        metrics.register_label_values(
            license_types=LicenseType.values,
            codes=[code.value for code in rules.codes(rules.VALIDATE)],
            activation_codes=[code.value for code in rules.codes(rules.ACTIVATE)],
        )
