"""training seeds on trials, the answer on searches

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

A trial row is one evaluation at one training seed (`seed`); a candidate raced over several seeds
has one row per seed. Rows stored before have no seed: they were trained at the search's `seed`
(calibration rows at their replicate's), which is how readers take a NULL. A finished search
stores its answer (the recommended module or Joint, with the confirmation figures).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("answer", sa.JSON(), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("seed", sa.Integer(), nullable=True))


def downgrade() -> None:
    trials = sa.table("trials", sa.column("phase", sa.String))
    # the old schema knows only search and calibration rows
    op.execute(trials.delete().where(trials.c.phase.in_(("racing", "confirmation"))))
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("seed")
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("answer")
