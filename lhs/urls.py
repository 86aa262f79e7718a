from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import include, path
from django.utils.translation import gettext
from django.views.defaults import page_not_found
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.routers import DefaultRouter

from dashboards import views as dashboard_views
from initiatives.api import InitiativeViewSet, PDSACycleViewSet, WorkflowViewSet
from initiatives.api_forums import AgendaItemViewSet, ForumViewSet, MeetingViewSet
from initiatives.api_notifications import NotificationViewSet
from initiatives.api_prioritisation import CriterionViewSet, RankingViewSet, ScoreViewSet
from initiatives.api_scale_up import AdoptionViewSet, EffectViewSet, ScaleUpPlanViewSet
from initiatives.api_support import AttachmentViewSet, SupportRequestViewSet
from initiatives.api_voting import VotingRoundViewSet
from measures.api import ImportBatchViewSet, MeasureViewSet, SeriesViewSet


class ApiDocsView(SpectacularSwaggerSplitView):
    """The API's documentation page: a person not logged in is sent to the log-in page (a bare
    401 told them nothing); the schema itself still answers 401, for machines."""

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)


def handler404(request, exception):
    """JSON under /api/ (as the API documents it), the page everywhere else."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": gettext("Not found.")}, status=404)
    return page_not_found(request, exception)


router = DefaultRouter()
router.register("imports", ImportBatchViewSet, basename="import-batch")
router.register("measures", MeasureViewSet, basename="measure")
router.register("series", SeriesViewSet, basename="series")
router.register("initiatives", InitiativeViewSet, basename="initiative")
router.register("pdsa-cycles", PDSACycleViewSet, basename="pdsa-cycle")
router.register("workflow", WorkflowViewSet, basename="workflow")
router.register("forums", ForumViewSet, basename="forum")
router.register("meetings", MeetingViewSet, basename="meeting")
router.register("agenda-items", AgendaItemViewSet, basename="agenda-item")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("scale-up-plans", ScaleUpPlanViewSet, basename="scale-up-plan")
router.register("adoptions", AdoptionViewSet, basename="adoption")
router.register("effects", EffectViewSet, basename="effect")
router.register("voting-rounds", VotingRoundViewSet, basename="voting-round")
router.register("support-requests", SupportRequestViewSet, basename="support-request")
router.register("attachments", AttachmentViewSet, basename="attachment")
router.register("criteria", CriterionViewSet, basename="criterion")
router.register("scores", ScoreViewSet, basename="score")
router.register("rankings", RankingViewSet, basename="ranking")

urlpatterns = [
    path("", dashboard_views.home, name="home"),
    path("measures/", include("measures.urls")),
    path("", include("initiatives.urls")),
    path("", include("dashboards.urls")),
    path(
        "accounts/login/",
        login_not_required(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The language switch works on the log-in page too.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP forbids inline scripts.
    path(
        "api/docs/",
        ApiDocsView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
]
