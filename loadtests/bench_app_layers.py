"""bench_app's routes behind CORS, one before-hook and one after-hook: the cost of a chain
(compare with bench_app under the same driver)."""
from catzilla.middleware.cors import CORSMiddleware

from loadtests.bench_app import app

app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])


@app.before_request
async def before(request):
    return None


@app.after_request
async def after(request, response):
    response.headers["x-layered"] = "1"
    return response
