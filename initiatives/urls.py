"""Pages of the improvement workflow: forums, meetings, initiatives and what is done with them.

Forum and meeting pages live here, not in ``forums``: they list initiatives, which ``forums``
must not import (DESIGN.md §3).
"""

from django.urls import path

from . import views, views_forums, views_notifications, views_scale_up, views_support
from . import views_prioritisation as prioritisation
from .views_voting import round_close, round_open, vote, voting_board, voting_round

app_name = "initiatives"

urlpatterns: list = []

# Initiatives: the list, logging, the page, editing, the steps, PDSA cycles; the help page.
urlpatterns += [
    path("initiatives/", views.initiative_list, name="initiative-list"),
    path("initiatives/new/", views.initiative_new, name="initiative-new"),
    path(
        "forums/<int:forum_pk>/initiatives/new/", views.initiative_new, name="forum-initiative-new"
    ),
    path("initiatives/<int:pk>/", views.initiative_detail, name="initiative"),
    path("initiatives/<int:pk>/edit/", views.initiative_edit, name="initiative-edit"),
    path("initiatives/<int:pk>/steps/<slug:name>/", views.initiative_step, name="step"),
    path("initiatives/<int:pk>/pdsa/new/", views.pdsa_new, name="pdsa-new"),
    path("help/workflow/", views.workflow_help, name="help-workflow"),
    path("divisions/<slug:code>/pipeline/", views.division_pipeline, name="pipeline"),
]

# Forums and meetings: the list, a forum's page, a meeting (record, agenda, print, export).
urlpatterns += [
    path("forums/", views_forums.forums, name="forum-list"),
    path("forums/<int:pk>/", views_forums.forum, name="forum"),
    path("forums/<int:pk>/meetings/new/", views_forums.meeting_new, name="meeting-new"),
    path("meetings/<int:pk>/", views_forums.meeting, name="meeting"),
    path("meetings/<int:pk>/remove/", views_forums.meeting_remove, name="meeting-remove"),
    path("meetings/<int:pk>/print/", views_forums.meeting_print, name="meeting-print"),
    path("meetings/<int:pk>/document.docx", views_forums.meeting_export, name="meeting-export"),
    path("meetings/<int:pk>/agenda/", views_forums.agenda_add, name="agenda-add"),
    path(
        "meetings/<int:pk>/agenda/proposed/",
        views_forums.agenda_add_proposed,
        name="agenda-add-proposed",
    ),
    path("agenda-items/<int:pk>/", views_forums.agenda_item_edit, name="agenda-item-edit"),
    path("agenda-items/<int:pk>/move/", views_forums.agenda_item_move, name="agenda-item-move"),
    path(
        "agenda-items/<int:pk>/remove/", views_forums.agenda_item_remove, name="agenda-item-remove"
    ),
]

# Support requests (the support unit's queue; asking, from an initiative's page) and files.
urlpatterns += [
    path("support/", views_support.support_queue_page, name="support-queue"),
    path(
        "initiatives/<int:pk>/support/",
        views_support.support_request_new,
        name="support-request-new",
    ),
    path(
        "support/<int:pk>/take/",
        views_support.support_request_take_view,
        name="support-request-take",
    ),
    path(
        "support/<int:pk>/release/",
        views_support.support_request_release_view,
        name="support-request-release",
    ),
    path(
        "support/<int:pk>/answer/",
        views_support.support_request_answer_view,
        name="support-request-answer",
    ),
    path("initiatives/<int:pk>/attachments/", views_support.attachment_new, name="attachment-new"),
    path("attachments/<int:pk>/", views_support.attachment_download, name="attachment"),
    path("attachments/<int:pk>/delete/", views_support.attachment_remove, name="attachment-delete"),
]

# One's notifications: the list, marking read (HTMX), e-mail settings.
urlpatterns += [
    path("notifications/", views_notifications.notifications, name="notifications"),
    path(
        "notifications/<int:pk>/read/",
        views_notifications.notification_read,
        name="notification-read",
    ),
    path(
        "notifications/read-all/",
        views_notifications.notifications_read_all,
        name="notifications-read-all",
    ),
    path(
        "notifications/settings/",
        views_notifications.notification_settings,
        name="notification-settings",
    ),
]

# Board voting: the board's open rounds, a round (ballot, result), opening and closing one.
urlpatterns += [
    path("voting/", voting_board, name="voting-board"),
    path("voting/<int:pk>/", voting_round, name="voting-round"),
    path("voting/<int:pk>/vote/", vote, name="voting-vote"),
    path("voting/<int:pk>/close/", round_close, name="voting-close"),
    path("initiatives/<int:pk>/voting/open/", round_open, name="voting-open"),
]

# Scale-up: the board's plan, a department's spread, a unit's adoption, the board's overview.
urlpatterns += [
    path("initiatives/<int:pk>/scale-up/", views_scale_up.scale_up_plan_new, name="scale_up_plan"),
    path(
        "initiatives/<int:pk>/department-spread/",
        views_scale_up.department_spread_new,
        name="department_spread",
    ),
    path("adoptions/<int:pk>/", views_scale_up.adoption_edit, name="adoption"),
    path("spread/", views_scale_up.spread, name="spread"),
]

# Prioritisation: the forums that prioritise, a forum's ranked list and impact/effort view,
# its criteria (the chair's), a member's scores of an initiative, a department's dialogue.
urlpatterns += [
    path("prioritisation/", prioritisation.index, name="prioritisation-index"),
    path(
        "forums/<int:pk>/prioritisation/",
        prioritisation.forum_prioritisation,
        name="prioritisation",
    ),
    path("forums/<int:pk>/prioritisation/criteria/", prioritisation.criteria, name="criteria"),
    path("criteria/<int:pk>/", prioritisation.criterion_edit, name="criterion-edit"),
    path("criteria/<int:pk>/active/", prioritisation.criterion_active, name="criterion-active"),
    path("criteria/<int:pk>/move/", prioritisation.criterion_order, name="criterion-move"),
    path(
        "forums/<int:pk>/prioritisation/initiatives/<int:initiative_pk>/",
        prioritisation.score,
        name="score",
    ),
    path("departments/<slug:code>/dialogue/", prioritisation.department_dialogue, name="dialogue"),
]
