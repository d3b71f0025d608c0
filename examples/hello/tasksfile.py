"""An example project: text pages rendered into a small site, then checked.

Run `runner` here twice: the first run builds, the second finds everything up to date.
Edit a page and run again: only what depends on it runs. Delete site/ and run again:
the pages come back from the cache, without rendering anything.
"""

import html
from pathlib import Path

from runner import TaskError, sh, task

TITLE = "hello, runner"


def render(text: str) -> str:
    """A page: its first line is the title, the rest are paragraphs."""
    title, _, body = text.partition("\n")
    paras = "".join(f"<p>{html.escape(p.strip())}</p>\n" for p in body.split("\n\n") if p.strip())
    return (f"<!doctype html>\n<title>{html.escape(title)} - {TITLE}</title>\n"
            f"<h1>{html.escape(title)}</h1>\n{paras}<a href=\"index.html\">home</a>\n")


@task(inputs=["pages/*.txt"], outputs=["site/*.html"])
def build():
    """Render every page of pages/ into site/."""
    Path("site").mkdir(exist_ok=True)
    for page in sorted(Path("pages").glob("*.txt")):
        out = Path("site") / (page.stem + ".html")
        out.write_text(render(page.read_text()))
        print(f"rendered {out}")


@task(deps=[build], inputs=["site/*.html"])
def check():
    """Check that every page links back home."""
    for page in sorted(Path("site").glob("*.html")):
        if 'href="index.html"' not in page.read_text():
            raise TaskError(f"{page} has no link home")
    sh("ls site")


@task(deps=[check], default=True)
def site(greeting: str = "done"):
    """Build and check the site (the default task)."""
    print(f"{greeting}: open site/index.html")
