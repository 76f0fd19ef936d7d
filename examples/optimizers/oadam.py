"""Optimistic Adam (Daskalakis, Ilyas, Syrgkanis and Zeng 2018, "Training GANs with Optimism", Algorithm 1).

Adam's moments, and an optimistic step: twice this iteration's Adam direction, minus the last one's,

    m_t = beta_1 m_{t-1} + (1 - beta_1) g_t            v_t = beta_2 v_{t-1} + (1 - beta_2) g_t^2
    u_t = m_hat_t / (sqrt(v_hat_t) + epsilon)          (bias-corrected: m_hat_t = m_t / (1 - beta_1^t), ...)
    w_{t+1} = w_t - learning_rate (2 u_t - u_{t-1})    (u_0 = 0)

so that in a two-player game the step anticipates the other player's move instead of chasing it (which damps
the cycling of plain gradient descent-ascent).

    bench run smoke --optimizers "adam,examples/optimizers/oadam.py:OptimisticAdam:learning_rate=2e-4,beta_1=0.5"
"""

from keras import ops
from keras.optimizers import Optimizer


class OptimisticAdam(Optimizer):
    def __init__(self, learning_rate=0.0002, beta_1=0.5, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # the first and second moments, and the last step's direction u_{t-1}
        self._m, self._v, self._u = self.add_optimizer_variables(var_list, ["m", "v", "previous_direction"])

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m, v, u = self._m[i], self._v[i], self._u[i]
        self.assign(m, self.beta_1 * m + (1 - self.beta_1) * g)
        self.assign(v, self.beta_2 * v + (1 - self.beta_2) * ops.square(g))
        m_hat = m / (1 - ops.power(ops.cast(self.beta_1, variable.dtype), t))
        v_hat = v / (1 - ops.power(ops.cast(self.beta_2, variable.dtype), t))
        direction = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        self.assign_sub(variable, lr * (2 * direction - u))
        self.assign(u, direction)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
