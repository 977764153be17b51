"""Parameters per task class of CellAnalysis: carried, framework, settings read, relayed (carried, never read).

    PYTHONPATH=. python bench/param_table.py

"Settings read" are the parameters a class (or an assay base class) declares in its body
(``name = setting(...)``); "relayed" are the other non-framework parameters it carries.
"""
import antibodies.tasks as tasks
from luigi_tasks.job import PlateTask, ImageJob

framework = {n for n, _ in PlateTask.get_params()} | {n for n, _ in ImageJob.get_params()}
classes = [getattr(tasks, n) for n in tasks.__all__]
import inspect, re
def declared(c):
    names = set()
    for base in c.__mro__:
        if base.__module__.startswith("antibodies"):
            names |= set(re.findall(r"^    (\w+) = (?:setting|luigi\.\w*Parameter)\(", inspect.getsource(base), re.M))
    return names
own = {c: declared(c) for c in classes}
print(f"{'class':20s} {'carried':>7s} {'framework':>9s} {'settings read':>13s} {'relayed (never read)':>20s}")
tot = [0, 0, 0, 0]
for c in classes:
    params = [n for n, _ in c.get_params()]
    fw = [n for n in params if n in framework]
    relayed = [n for n in params if n not in framework and n not in own[c]]
    row = [len(params), len(fw), len(own[c]), len(relayed)]
    tot = [a + b for a, b in zip(tot, row)]
    print(f"{c.__name__:20s} {row[0]:7d} {row[1]:9d} {row[2]:13d} {row[3]:20d}")
print(f"{'total':20s} {tot[0]:7d} {tot[1]:9d} {tot[2]:13d} {tot[3]:20d}")
