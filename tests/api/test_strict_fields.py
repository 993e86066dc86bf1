"""StrictCharField keeps DRF's refusal of surrogate code points, checked at C speed."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from aegis.core.api.serializers import StrictCharField


@pytest.mark.parametrize("text", ["ab\ud800c", "\udfff", "x" * 500 + "\udc00"])
def test_a_surrogate_is_refused_with_drfs_message_and_code(text):
    with pytest.raises(ValidationError) as raised:
        StrictCharField().run_validation(text)
    (detail,) = raised.value.detail
    assert detail.code == "surrogate_characters_not_allowed"
    assert str(detail).startswith("Surrogate characters are not allowed: U+D")


@pytest.mark.parametrize("text", ["plain", "ünïcödé ✓ 𝟙𝟟", "x" * 500])
def test_other_text_passes(text):
    assert StrictCharField().run_validation(text) == text
