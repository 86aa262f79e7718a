"""REST API for board voting: rounds (open, read, close early) and votes (cast, read).

Thin, as the pages are: rounds are fetched through ``selectors_voting.visible_rounds`` (every
active member of staff reads them; nobody else: 404), every write is a service of
``initiatives.voting`` whose refusals ``lhs.api`` answers (not_permitted 403, conflict 409 —
the round has closed or its deadline has passed —, other 400). Ballots are secret until a
round closes: meanwhile a round shows who has voted, and ``…/votes/`` only the reader's own.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from forums.models import Meeting
from measures.api import Pagination, error_responses

from .enums import RoundOutcome, RoundStatus, VoteChoice
from .models import Vote, VotingRound
from .rules import visible_initiatives
from .selectors_voting import visible_rounds, votes_visible_to
from .voting import MAX_COMMENT, vote_cast, voting_round_close, voting_round_open

_READ = (401, 403, 404)
_WRITE = (400, 401, 403, 404, 409)


# -- serializers ------------------------------------------------------------------------------


class CommentField(serializers.CharField):
    """Free text, optional; a NUL (which no text here holds, and PostgreSQL refuses) is
    dropped rather than refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("max_length", MAX_COMMENT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.replace("\x00", "")
        return super().to_internal_value(data)


class VotingRoundSerializer(serializers.ModelSerializer):
    initiative_title = serializers.CharField(source="initiative.title", read_only=True)
    opened_by = serializers.CharField(source="opened_by.get_username", read_only=True)
    closed_by = serializers.CharField(
        source="closed_by.get_username",
        read_only=True,
        allow_null=True,
        default=None,
        help_text=_("Empty while open, and when it closed by itself."),
    )
    voters = serializers.SerializerMethodField(
        help_text=_("Who has voted (user names), never how while the round is open.")
    )
    votes_cast = serializers.SerializerMethodField()
    approve_count = serializers.SerializerMethodField()
    reject_count = serializers.SerializerMethodField()
    abstain_count = serializers.SerializerMethodField()
    quorum_met = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField()
    decision = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text=_("The activity (step) the closed round's outcome took."),
    )

    class Meta:
        model = VotingRound
        fields = [
            "id",
            "initiative",
            "initiative_title",
            "forum",
            "status",
            "opened_by",
            "opened_at",
            "deadline",
            "quorum",
            "eligible",
            "voters",
            "votes_cast",
            "closed_at",
            "closed_by",
            "approve_count",
            "reject_count",
            "abstain_count",
            "quorum_met",
            "outcome",
            "decision",
        ]
        read_only_fields = fields

    def _voters(self, obj) -> list[Vote]:
        return list(obj.votes.all())

    def get_voters(self, obj) -> list[str]:
        return sorted(vote.voter.get_username() for vote in self._voters(obj))

    def get_votes_cast(self, obj) -> int:
        return len(self._voters(obj))

    def _result(self, obj, name):
        return getattr(obj, name) if obj.status == RoundStatus.CLOSED else None

    # The result, empty (null) while the round is open.
    def get_approve_count(self, obj) -> int | None:
        return self._result(obj, "approve_count")

    def get_reject_count(self, obj) -> int | None:
        return self._result(obj, "reject_count")

    def get_abstain_count(self, obj) -> int | None:
        return self._result(obj, "abstain_count")

    def get_quorum_met(self, obj) -> bool | None:
        return self._result(obj, "quorum_met")

    @extend_schema_field(
        serializers.ChoiceField(choices=RoundOutcome.choices, allow_null=True, read_only=True)
    )
    def get_outcome(self, obj):
        return self._result(obj, "outcome")


class RoundOpenSerializer(serializers.Serializer):
    """Opening a round (``voting_round_open``): the board's chair, on an initiative at the
    board; the service checks the deadline (in the future) and the quorum (1 … members)."""

    initiative = serializers.IntegerField(
        help_text=_("The initiative's id (one you may not see, or none such: 404).")
    )
    deadline = serializers.DateTimeField()
    quorum = serializers.IntegerField(min_value=1, max_value=10_000)
    comment = CommentField()
    meeting = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_("The id of the board's meeting the decision to vote was taken in."),
    )


class RoundCloseSerializer(serializers.Serializer):
    comment = CommentField()


class VoteSerializer(serializers.ModelSerializer):
    voter = serializers.CharField(source="voter.get_username", read_only=True)

    class Meta:
        model = Vote
        fields = [
            "id",
            "round",
            "voter",
            "choice",
            "comment",
            "interest_declared",
            "interest_flagged",
            "cast_at",
            "updated_at",
        ]
        read_only_fields = fields


class VoteCastSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=VoteChoice.choices)
    comment = CommentField()
    interest_declared = serializers.BooleanField(
        required=False,
        default=False,
        help_text=_("You have an interest (e.g. it comes from your department)."),
    )


class RoundFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RoundStatus.choices, required=False)
    initiative = serializers.IntegerField(required=False)


# -- views ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary=_("Voting rounds, the latest first"),
        parameters=[
            OpenApiParameter("status", str, enum=list(RoundStatus.values)),
            OpenApiParameter("initiative", int),
        ],
        responses={200: VotingRoundSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(
        summary=_("One voting round"),
        responses={200: VotingRoundSerializer, **error_responses(*_READ)},
    ),
)
class VotingRoundViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Board votes on scale-up: every active member of staff reads the rounds; the board's
    chair opens and closes them early, its members vote."""

    serializer_class = VotingRoundSerializer
    pagination_class = Pagination
    http_method_names = ["get", "post", "head", "options"]
    # JSON only: a form body cannot say "no meeting" (null) for a number.
    parser_classes = [parsers.JSONParser]

    def get_queryset(self):
        rounds = visible_rounds(self.request.user).prefetch_related(
            Prefetch("votes", queryset=Vote.objects.select_related("voter"))
        )
        if self.action == "list":
            query = RoundFilterSerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            if "status" in query.validated_data:
                rounds = rounds.filter(status=query.validated_data["status"])
            if "initiative" in query.validated_data:
                rounds = rounds.filter(initiative_id=query.validated_data["initiative"])
        return rounds.order_by("-opened_at", "-pk")

    def _fresh(self, pk: int):
        return VotingRoundSerializer(self.get_queryset().get(pk=pk)).data

    @extend_schema(
        summary=_("Open a round on an initiative at the board (its chair)"),
        request=RoundOpenSerializer,
        responses={201: VotingRoundSerializer, **error_responses(*_WRITE)},
    )
    def create(self, request):
        incoming = RoundOpenSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        initiative = (
            visible_initiatives(request.user)
            .select_related("forum")
            .filter(pk=data.pop("initiative"))
            .first()
        )
        if initiative is None:
            raise NotFound(_("No such initiative that you may see."))
        meeting_id = data.pop("meeting")
        meeting = Meeting.objects.filter(pk=meeting_id).first() if meeting_id else None
        if meeting_id and meeting is None:
            raise NotFound(_("No such meeting."))
        opened = voting_round_open(
            user=request.user, initiative=initiative, meeting=meeting, **data
        )
        return Response(self._fresh(opened.pk), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary=_("Close the round before its deadline (the board's chair)"),
        request=RoundCloseSerializer,
        responses={200: VotingRoundSerializer, **error_responses(*_WRITE)},
    )
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        voting_round = self.get_object()
        incoming = RoundCloseSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        voting_round_close(
            round=voting_round, user=request.user, comment=incoming.validated_data["comment"]
        )
        return Response(self._fresh(voting_round.pk))

    @extend_schema(
        methods=["GET"],
        summary=_("The round's votes you may read: your own while it is open, all after"),
        responses={200: VoteSerializer(many=True), **error_responses(*_READ)},
    )
    @extend_schema(
        methods=["POST"],
        summary=_("Cast your vote, or change it (one per member; the last one counts)"),
        request=VoteCastSerializer,
        responses={200: VoteSerializer, **error_responses(*_WRITE)},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def votes(self, request, pk=None):
        voting_round = self.get_object()
        if request.method == "GET":
            votes = votes_visible_to(request.user, voting_round)
            return Response(VoteSerializer(votes, many=True).data)
        incoming = VoteCastSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        vote = vote_cast(user=request.user, round=voting_round, **incoming.validated_data)
        return Response(VoteSerializer(vote).data)
