from django.conf import settings
from django.http import HttpRequest

from rfr.engine import active_pack_name
from rfr.limits import TEXT_LIMITS


def rfr(request: HttpRequest) -> dict[str, object]:
    return {
        "rfr_model_pack": active_pack_name(),
        "rfr_production_shape": settings.PRODUCTION_SHAPE,
        "rfr_text_limits": TEXT_LIMITS,  # the maxlength of each free-text field (rfr/limits.py)
    }
