"""A fixed-latency fake of the five Stripe endpoints checkout uses, for
bench/checkout.sh when localstripe is the bottleneck (it pickles its whole
store on every write, so it slows as a run goes on). Every call answers after
LATENCY_MS; state lives in memory. Runs on localstripe's virtualenv (aiohttp).
Usage: python fake-stripe.py PORT LATENCY_MS
"""
import asyncio
import itertools
import sys

from aiohttp import web

LATENCY = int(sys.argv[2]) / 1000
INTENTS = {}
IDS = itertools.count(1)


async def create(request):
    form = await request.post()
    await asyncio.sleep(LATENCY)
    pi = {"id": f"pi_fake{next(IDS)}", "object": "payment_intent", "status": "requires_confirmation",
          "amount": int(form["amount"]), "currency": form["currency"]}
    INTENTS[pi["id"]] = pi
    return web.json_response(pi)


def step(new_status):
    async def handler(request):
        await asyncio.sleep(LATENCY)
        pi = INTENTS.get(request.match_info["id"])
        if pi is None:
            return web.json_response({"error": {"message": "No such payment_intent"}}, status=404)
        pi["status"] = new_status
        return web.json_response(pi)
    return handler


async def retrieve(request):
    await asyncio.sleep(LATENCY)
    pi = INTENTS.get(request.match_info["id"])
    return web.json_response(pi) if pi else web.json_response({"error": {}}, status=404)


async def listing(request):
    return web.json_response({"object": "list", "data": list(INTENTS.values())})


app = web.Application()
app.add_routes([
    web.post("/v1/payment_intents", create),
    web.get("/v1/payment_intents", listing),
    web.get("/v1/payment_intents/{id}", retrieve),
    web.post("/v1/payment_intents/{id}/confirm", step("requires_capture")),
    web.post("/v1/payment_intents/{id}/capture", step("succeeded")),
    web.post("/v1/payment_intents/{id}/cancel", step("canceled")),
])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
