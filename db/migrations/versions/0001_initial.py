"""searches, trials and iterations

Revision ID: 0001
Revises:
Create Date: 2026-11-23

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("budget", sa.Integer(), nullable=False),
        sa.Column("launched_by", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("checkpoint_dir", sa.Text(), nullable=True),
    )
    op.create_index("ix_searches_status", "searches", ["status"])
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "search_id", sa.Integer(), sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tokens", sa.JSON(), nullable=True),
        sa.Column("genotype", sa.JSON(), nullable=True),
        sa.Column("genotype_hash", sa.String(64), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("early_stopped", sa.Boolean(), nullable=False),
        sa.Column("main_params", sa.BigInteger(), nullable=False),
        sa.Column("aux_params", sa.BigInteger(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("search_id", "index", name="uq_trials_search_index"),
    )
    op.create_index("ix_trials_search_reward", "trials", ["search_id", "reward"])
    op.create_table(
        "iterations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "search_id", sa.Integer(), sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("num_episodes", sa.Integer(), nullable=False),
        sa.Column("reward_mean", sa.Float(), nullable=True),
        sa.Column("reward_max", sa.Float(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("search_id", "index", name="uq_iterations_search_index"),
    )


def downgrade() -> None:
    op.drop_table("iterations")
    op.drop_index("ix_trials_search_reward", table_name="trials")
    op.drop_table("trials")
    op.drop_index("ix_searches_status", table_name="searches")
    op.drop_table("searches")
