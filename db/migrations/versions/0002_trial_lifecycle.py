"""trial lifecycle: waiting/running/pruned states, timestamps, attempts, Ray node, phase;
a search's fidelity figures

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Trials now exist from the moment they are decided. `cached` and `early_stopped` stop being
flags: they become the statuses `cached` (already one) and `pruned`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("fidelity", sa.JSON(), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("phase", sa.String(16), nullable=False, server_default="search"))
        batch.add_column(sa.Column("replicate", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("per_seed", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cpu_seconds", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("node_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("node_ip", sa.String(64), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(), nullable=True))
    trials = sa.table(
        "trials",
        sa.column("status", sa.String),
        sa.column("early_stopped", sa.Boolean),
        sa.column("created_at", sa.DateTime),
        sa.column("finished_at", sa.DateTime),
        sa.column("attempts", sa.Integer),
    )
    op.execute(
        trials.update()
        .where(trials.c.status == "succeeded", trials.c.early_stopped.is_(True))
        .values(status="pruned")
    )
    # rows of the old schema were written when they ended
    op.execute(trials.update().values(finished_at=trials.c.created_at))
    op.execute(trials.update().where(trials.c.status == "cached").values(attempts=0))
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("cached")
        batch.drop_column("early_stopped")
        batch.create_index("ix_trials_search_status", ["search_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_index("ix_trials_search_status")
        batch.add_column(sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("early_stopped", sa.Boolean(), nullable=False, server_default=sa.false()))
    trials = sa.table(
        "trials",
        sa.column("status", sa.String),
        sa.column("cached", sa.Boolean),
        sa.column("early_stopped", sa.Boolean),
    )
    op.execute(trials.update().where(trials.c.status == "cached").values(cached=True))
    op.execute(
        trials.update().where(trials.c.status == "pruned").values(status="succeeded", early_stopped=True)
    )
    op.execute(trials.delete().where(trials.c.status.in_(("waiting", "running"))))
    with op.batch_alter_table("trials") as batch:
        for name in (
            "finished_at",
            "started_at",
            "node_ip",
            "node_id",
            "attempts",
            "cpu_seconds",
            "per_seed",
            "replicate",
            "phase",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("fidelity")
