"""The DINO self-distillation loss (Caron et al. 2021), as in facebookresearch/dino, safe in a single process."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DINOLoss"]


def _distributed() -> bool:
    """Whether a ``torch.distributed`` process group is up (collectives would otherwise raise)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class DINOLoss(nn.Module):
    r"""Cross-entropy between a centred, sharpened teacher and the student, over every pair of different crops.

    With ``B`` images, student outputs :math:`s_v` for crops :math:`v = 1..V` (the ``G`` global crops first,
    then the local ones) and teacher outputs :math:`t_q` for the ``G`` global crops only:

    .. math::

        P_t^{(q)} = \operatorname{softmax}\big((t_q - c) / \tau_t(e)\big) \quad (\text{no gradient}), \qquad
        \log P_s^{(v)} = \operatorname{log\_softmax}(s_v / \tau_s),

        L = \frac{1}{|\Pi|\,B} \sum_{(q, v) \in \Pi} \sum_{b=1}^{B} \sum_{k=1}^{K}
            -P_t^{(q)}[b, k] \, \log P_s^{(v)}[b, k], \qquad \Pi = \{(q, v) : q \le G,\ v \le V,\ v \ne q\},

    where :math:`\tau_t(e)` is the teacher temperature at epoch :math:`e` and :math:`c` the centre. After the
    loss is computed the centre follows an exponential moving average of the teacher's batch mean, taken over
    every process of a distributed run:

    .. math::

        c \leftarrow m\,c + (1 - m)\,\frac{1}{N} \sum_{i=1}^{N} t_i, \qquad N = G\,B \times \text{world size}.

    Args:
        out_dim: ``K``, the length of the head's output.
        teacher_temp_schedule: Teacher temperature for each epoch, warm-up included
            (see :func:`hema.train.run.schedules.teacher_temperature_schedule`).
        student_temp: :math:`\tau_s`.
        center_momentum: :math:`m`.
        n_global_crops: ``G``, the crops the teacher sees; the batch size is ``len(teacher_output) / G``.

    Raises:
        ValueError: If a temperature is not positive, the momentum is outside ``[0, 1]`` or the schedule is empty.
    """

    center: Tensor

    def __init__(
        self,
        out_dim: int,
        teacher_temp_schedule: np.ndarray | Sequence[float],
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        n_global_crops: int = 2,
    ) -> None:
        super().__init__()
        schedule = np.asarray(teacher_temp_schedule, dtype=np.float64).reshape(-1)
        if schedule.size == 0 or (schedule <= 0).any() or student_temp <= 0:
            raise ValueError("DINOLoss needs a non-empty teacher temperature schedule and positive temperatures")
        if not 0.0 <= center_momentum <= 1.0:
            raise ValueError(f"center_momentum must lie in [0, 1], got {center_momentum}")
        if n_global_crops < 1:
            raise ValueError(f"n_global_crops must be at least 1, got {n_global_crops}")
        self.out_dim = out_dim
        self.teacher_temp_schedule = schedule
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.n_global_crops = n_global_crops
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temp(self, epoch: int) -> float:
        """The teacher temperature at ``epoch``.

        Raises:
            IndexError: If the schedule has no entry for ``epoch``.
        """
        if not 0 <= epoch < len(self.teacher_temp_schedule):
            epochs = len(self.teacher_temp_schedule)
            raise IndexError(f"epoch {epoch} is outside the teacher temperature schedule ({epochs} epochs)")
        return float(self.teacher_temp_schedule[epoch])

    def _crop_counts(self, student_output: Tensor, teacher_output: Tensor) -> int:
        """Number of student crops ``V``, after checking that the two outputs agree on a batch size."""
        if student_output.ndim != 2 or teacher_output.ndim != 2:
            raise ValueError("student and teacher outputs must be 2-D (crops * batch, out_dim)")
        if student_output.shape[1] != self.out_dim or teacher_output.shape[1] != self.out_dim:
            columns = (student_output.shape[1], teacher_output.shape[1])
            raise ValueError(f"outputs have {columns} columns (student, teacher), expected {self.out_dim}")
        batch, rest = divmod(teacher_output.shape[0], self.n_global_crops)
        if batch == 0 or rest or student_output.shape[0] % batch:
            raise ValueError(
                f"teacher rows ({teacher_output.shape[0]}) must be {self.n_global_crops} x batch and student rows "
                f"({student_output.shape[0]}) a multiple of that batch"
            )
        n_crops = student_output.shape[0] // batch
        if n_crops < max(self.n_global_crops, 2):
            raise ValueError(
                f"the student sees {n_crops} crops: it needs the {self.n_global_crops} global ones and 2 at least"
            )
        return n_crops

    def forward(self, student_output: Tensor, teacher_output: Tensor, epoch: int) -> Tensor:
        """The loss of one batch; then updates the centre.

        Args:
            student_output: ``(V * B, out_dim)``, crop-major: all images' crop 0, then crop 1, ...; global crops
                first, in the same order as the teacher's.
            teacher_output: ``(G * B, out_dim)``, the global crops, crop-major.
            epoch: Index into the teacher temperature schedule.

        Returns:
            The scalar loss.
        """
        n_crops = self._crop_counts(student_output, teacher_output)
        student_log_probs = F.log_softmax(student_output / self.student_temp, dim=-1).chunk(n_crops)
        teacher_probs = F.softmax((teacher_output - self.center) / self.teacher_temp(epoch), dim=-1)
        teacher_probs = teacher_probs.detach().chunk(self.n_global_crops)
        total = student_output.new_zeros(())
        n_terms = 0
        for teacher_crop, probs in enumerate(teacher_probs):
            for student_crop, log_probs in enumerate(student_log_probs):
                if student_crop == teacher_crop:
                    continue
                total = total + torch.sum(-probs * log_probs, dim=-1).mean()
                n_terms += 1
        self.update_center(teacher_output)
        return total / n_terms

    @torch.no_grad()
    def update_center(self, teacher_output: Tensor) -> None:
        """Move the centre towards the mean teacher output of this step (all processes' rows in a distributed run)."""
        batch_sum = teacher_output.detach().sum(dim=0, keepdim=True).to(self.center.dtype)
        rows = teacher_output.shape[0]
        if _distributed():
            torch.distributed.all_reduce(batch_sum)
            rows *= torch.distributed.get_world_size()
        self.center.mul_(self.center_momentum).add_(batch_sum / rows, alpha=1.0 - self.center_momentum)
