"""AdaBelief (Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris and Duncan 2020, "AdaBelief Optimizer: Adapting
Stepsizes by the Belief in Observed Gradients", Algorithm 2), which the paper shows on GANs (WGAN, SN-GAN).

Adam with the second moment of the gradient's deviation from its running mean (the "belief") instead of the
gradient's own: a gradient close to what was expected earns a large step, a surprising one a small step.

    m_t = beta_1 m_{t-1} + (1 - beta_1) g_t
    s_t = beta_2 s_{t-1} + (1 - beta_2) (g_t - m_t)^2 + epsilon
    w_t = w_{t-1} - learning_rate m_hat_t / (sqrt(s_hat_t) + epsilon)     (bias-corrected m_hat_t, s_hat_t)

    bench run smoke --optimizers "adam,examples/optimizers/adabelief.py:AdaBelief:learning_rate=2e-4,beta_1=0.5"
"""

from keras import ops
from keras.optimizers import Optimizer


class AdaBelief(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-16, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._s = self.add_optimizer_variables(var_list, ["m", "belief"])

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m, s = self._m[i], self._s[i]
        self.assign(m, self.beta_1 * m + (1 - self.beta_1) * g)
        self.assign(s, self.beta_2 * s + (1 - self.beta_2) * ops.square(g - m) + self.epsilon)
        m_hat = m / (1 - ops.power(ops.cast(self.beta_1, variable.dtype), t))
        s_hat = s / (1 - ops.power(ops.cast(self.beta_2, variable.dtype), t))
        self.assign_sub(variable, lr * m_hat / (ops.sqrt(s_hat) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
