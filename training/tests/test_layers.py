"""training/'s layers (README.md, "Layout"), read from every module's imports: each package imports
only from the layers below it, and no chain of imports leads from a module back to itself."""
import ast
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What each package may import from; tests/ may import anything.
BELOW = {
    "world": set(),
    "kvcache": set(),
    "model": {"world", "kvcache"},
    "pack": {"world", "kvcache", "model"},
    "upstream": {"world", "kvcache"},
    "export": {"world", "kvcache", "model", "pack", "upstream"},
    "eval": {"world", "kvcache", "model", "pack", "upstream", "export"},
}


def modules():
    """{dotted name: the training modules it imports}, for every module in the packages."""
    found = {}
    for package in BELOW:
        for path in sorted((ROOT / package).glob("*.py")):
            name = f"training.{package}.{path.stem}"
            imported = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    # `from training.world import shapes` names a module; `from training.world.bpe import X` a name.
                    imported.update(f"{node.module}.{alias.name}" for alias in node.names)
                    imported.add(node.module)
            found[name] = {m for m in imported if m.startswith("training.")}
    return {name: {m for m in imported if m in found} for name, imported in found.items()}


class LayersTest(unittest.TestCase):
    def test_every_package_imports_only_from_the_layers_below_it(self):
        for name, imported in modules().items():
            package = name.split(".")[1]
            for module in imported:
                with self.subTest(module=name, imports=module):
                    self.assertIn(module.split(".")[1], BELOW[package] | {package})

    def test_no_module_imports_itself_back(self):
        graph = modules()

        def reaches(start, goal, seen):
            for module in graph[start] - seen:
                seen.add(module)
                if module == goal or reaches(module, goal, seen):
                    return True
            return False

        for name in graph:
            with self.subTest(module=name):
                self.assertFalse(reaches(name, name, set()), f"{name} is imported back by a module it imports")


if __name__ == "__main__":
    unittest.main()
