"""Every model change ships with its migration."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration() -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
        raise SystemExit(0)
    assert exit_info.value.code == 0, "run `python manage.py makemigrations` and commit the result"
