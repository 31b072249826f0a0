"""The optional compiled step kernels (src/bptt/_kernels.c); everything else is in pyproject.toml.

The extension is optional: where it cannot be built (no C compiler), installation goes on and
bptt computes the same equations in NumPy.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """-O3, -fno-trapping-math so that GCC vectorises tanh's clamps (no FP flags are read), and
    -fno-math-errno so that it vectorises Adam's square root (errno is never read)."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args += ["-O3", "-fno-trapping-math", "-fno-math-errno"]
        super().build_extensions()


setup(
    ext_modules=[Extension("bptt._kernels", ["src/bptt/_kernels.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
