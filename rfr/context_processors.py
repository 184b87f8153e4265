from django.conf import settings
from django.http import HttpRequest


def rfr(request: HttpRequest) -> dict[str, object]:
    return {"rfr_model_pack": settings.RFR_MODEL_PACK, "rfr_production_shape": settings.PRODUCTION_SHAPE}
