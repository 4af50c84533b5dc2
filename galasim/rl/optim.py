"""PyTorch's RMSprop, stepped on the learner's flat vectors: one operation per network, not per tensor.

A learner's parameters are views into one flat vector (:func:`galasim.rl.model.flatten_`).
:class:`FlatRMSprop` makes the gradients and the running averages of squared gradients views into
flat vectors as well, so an RMSprop step is five in-place operations over the whole network
instead of five per parameter tensor (twelve on the Nature CNN): fewer kernel launches and no
per-tensor temporaries.

It also avoids a slow path: PyTorch's CPU ``sqrt`` takes ~15x longer on zeros and subnormal numbers
than on normal ones (7.3 ms against 0.48 ms for 1.7M zeros, one thread), and a trained Pong
learner's averages hold about 6% of them (6.4% after 10M frames of GALA 4 x 4: the averages of
weights whose gradient stays 0 decay by ``alpha`` per step, through the subnormals to 0). The averages are clamped to a tiny normal number before the square root;
``sqrt(v) + eps`` then rounds to exactly ``eps`` in float32 for every ``v`` below it, so the step is
bitwise the one ``torch.optim.RMSprop`` takes (``tests/test_rl_optim.py``).

The state and ``state_dict`` are RMSprop's, so checkpoints load into either class.

``tf_like=True`` takes TensorFlow's RMSprop steps instead, as the A2C of OpenAI Baselines (and
Stable-Baselines3's ``RMSpropTFLike``) does: the averages start at 1 rather than 0, and ``eps`` is
added under the square root, ``lr * g / sqrt(v + eps)``. PyTorch's first step is ``lr * g / (0.1 |g|
+ eps)``, about ``10 lr`` on every weight whose gradient is well above ``10 eps``; TensorFlow's
starts near ``lr * g`` and grows as the averages decay from 1 towards ``g**2`` (by ``alpha`` per
step: to 1% of the start in 460 steps at 0.99). (In a GALA 4 x 2 Pong run at lr 1.4e-3, PyTorch's
left learner 0 with 92.6% of its 512 hidden units dead and a constant policy after 1.2M frames,
against 38% at initialisation; docs/training.md.)
"""
from __future__ import annotations

from typing import Any

import torch

# The smallest positive normal float32.
_FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)


def _sqrt_floor(eps: float) -> float:
    """A normal float32 ``f`` with ``sqrt(v) + eps == eps`` for every ``0 <= v <= f``, or 0 if none.

    ``sqrt(f) = eps * 2**-26`` is below a quarter of the spacing of float32 numbers at ``eps``
    (``ulp(eps) >= eps * 2**-24``), so adding it to ``eps`` rounds back to ``eps``, with a margin
    for the rounding of ``f`` itself.
    """
    floor = (eps * 2.0**-26) ** 2
    return floor if floor >= _FLOAT32_TINY else 0.0


class FlatRMSprop(torch.optim.RMSprop):
    """``torch.optim.RMSprop`` (no momentum, not centred, no weight decay) over a flat parameter vector.

    Parameters
    ----------
    params : iterable of torch.Tensor
        The model's parameters, in the order of ``flat``, each a view into it.
    flat : torch.Tensor
        The flat parameter vector.
    lr, alpha, eps : float
        As ``torch.optim.RMSprop``.
    tf_like : bool
        Take TensorFlow's steps (averages start at 1, ``eps`` under the square root) instead of
        PyTorch's.

    Examples
    --------
    >>> from galasim.rl.model import make_model
    >>> model, flat = make_model((4,), 2, seed=0)
    >>> opt = FlatRMSprop(model.parameters(), flat, lr=7e-4)
    >>> model(torch.ones(3, 4))[1].sum().backward()
    >>> before = flat.clone(); opt.step(); bool((flat != before).any())
    True
    """

    def __init__(self, params: Any, flat: torch.Tensor, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, tf_like: bool = False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps)
        self.flat = flat
        self.tf_like = tf_like
        self.flat_grad = torch.zeros_like(flat)
        self.square_avg = torch.ones_like(flat) if tf_like else torch.zeros_like(flat)
        self._denominator = torch.empty_like(flat)
        self._step = torch.zeros(())
        self._slices: list[slice] = []
        offset = 0
        for p in self._params():
            if p.data_ptr() != flat.data_ptr() + offset * flat.element_size() or not p.is_contiguous():
                raise ValueError("FlatRMSprop needs parameters that are consecutive views of `flat`")
            self._slices.append(slice(offset, offset + p.numel()))
            p.grad = self.flat_grad[self._slices[-1]].view_as(p)
            offset += p.numel()
        if offset != flat.numel():
            raise ValueError(f"the parameters cover {offset} of the {flat.numel()} entries of `flat`")
        self._seat_state()

    def _params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def _seat_state(self) -> None:
        # RMSprop's per-parameter state, as views of the flat average and one shared step counter.
        for p, s in zip(self._params(), self._slices):
            self.state[p] = {"step": self._step, "square_avg": self.square_avg[s].view_as(p)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        with torch.no_grad():
            first = self.state[self._params()[0]]
            self._step.copy_(first.get("step", torch.zeros(())))
            for p, s in zip(self._params(), self._slices):
                self.square_avg[s].copy_(self.state[p]["square_avg"].reshape(-1))
        self._seat_state()

    def zero_grad(self, set_to_none: bool = False) -> None:
        # The gradients must stay views of the flat vector: zeroed in place, never set to None.
        self.flat_grad.zero_()

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: D102 (RMSprop's step)
        if closure is not None:
            raise ValueError("FlatRMSprop.step takes no closure")
        group = self.param_groups[0]
        alpha, eps, lr = group["alpha"], group["eps"], group["lr"]
        grad, avg, denominator = self.flat_grad, self.square_avg, self._denominator
        self._step += 1
        avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if self.tf_like:  # v + eps >= eps is a normal number: no slow path to avoid
            torch.add(avg, eps, out=denominator).sqrt_()
        else:
            floor = _sqrt_floor(eps)
            if floor > 0.0:
                torch.clamp_min(avg, floor, out=denominator).sqrt_()
            else:
                torch.sqrt(avg, out=denominator)
            denominator.add_(eps)
        self.flat.addcdiv_(grad, denominator, value=-lr)
