"""An in-memory fake of the Stripe endpoints checkout uses, for the benchmarks
(bench/checkout.sh, bench/flash-sale.sh) where localstripe is the bottleneck
(it pickles its whole store on every write, so it slows as a run goes on).
Runs on localstripe's virtualenv (aiohttp).

Usage: python fake-stripe.py PORT LATENCY_MS [DECLINE_RATE] [JITTER]

- Every call answers after LATENCY_MS, or, with JITTER > 0, after a
  log-normal delay whose median is LATENCY_MS (sigma JITTER; 0.35 puts p99
  at about 2.3 × the median), closer to a real provider's spread.
- A confirm declines with probability DECLINE_RATE (0 to 1): 402
  `card_declined`, the intent back to `requires_payment_method`, as Stripe
  does; nothing is authorized.
- Idempotency-Key is enforced as Stripe documents it (localstripe ignores
  it): per API key, the first answer of a POST is saved and replayed to the
  same method, path and parameters (`Idempotent-Replayed: true`) without
  acting again; other parameters or another path under the key is a 400
  `idempotency_error`, and a second request while the first still runs is
  a 409. Every authorization made is logged, so `GET /_fake/authorizations`
  can show there was one per key and how each ended.
"""
import asyncio
import itertools
import math
import random
import sys
import time

from aiohttp import web

LATENCY = int(sys.argv[2]) / 1000
DECLINE_RATE = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
JITTER = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
INTENTS = {}
IDS = itertools.count(1)
# (api key, idempotency key) -> (fingerprint, status, body) once answered;
# None while the first request runs.
KEYS = {}
# One line per authorization: intent id, the checkout key in its metadata,
# the Idempotency-Key of the confirm that made it, time (s since start).
AUTHORIZATIONS = []
COUNTS = {"requests": 0, "replayed": 0, "idempotency_errors": 0, "declined": 0}
RNG = random.Random(12)
STARTED = time.monotonic()


async def delay():
    if JITTER > 0:
        await asyncio.sleep(LATENCY * math.exp(RNG.gauss(0.0, JITTER)))
    else:
        await asyncio.sleep(LATENCY)


def error(status, kind, message, **extra):
    return web.json_response({"error": {"type": kind, "message": message, **extra}}, status=status)


@web.middleware
async def idempotency(request, handler):
    COUNTS["requests"] += 1
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    form = await request.post()
    fingerprint = (request.path, tuple(sorted(form.items())))
    scope = (request.headers.get("Authorization", ""), key)
    if scope in KEYS:
        saved = KEYS[scope]
        if saved is None:
            COUNTS["idempotency_errors"] += 1
            return error(409, "idempotency_error", "There is currently another in-progress request using this Idempotency-Key")
        if saved[0] != fingerprint:
            COUNTS["idempotency_errors"] += 1
            return error(400, "idempotency_error", "Keys for idempotent requests can only be used with the same parameters they were first used with")
        COUNTS["replayed"] += 1
        return web.Response(status=saved[1], body=saved[2], content_type="application/json", headers={"Idempotent-Replayed": "true"})
    KEYS[scope] = None
    try:
        response = await handler(request)
    except BaseException:
        del KEYS[scope]
        raise
    KEYS[scope] = (fingerprint, response.status, response.body)
    return response


async def create(request):
    form = await request.post()
    await delay()
    pi = {"id": f"pi_fake{next(IDS)}", "object": "payment_intent", "status": "requires_confirmation",
          "amount": int(form["amount"]), "currency": form["currency"],
          "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}}
    INTENTS[pi["id"]] = pi
    return web.json_response(pi)


async def confirm(request):
    await delay()
    pi = INTENTS.get(request.match_info["id"])
    if pi is None:
        return error(404, "invalid_request_error", "No such payment_intent")
    if pi["status"] not in ("requires_confirmation", "requires_payment_method"):
        return error(400, "invalid_request_error", f"This PaymentIntent's status is {pi['status']}; it cannot be confirmed")
    if RNG.random() < DECLINE_RATE:
        COUNTS["declined"] += 1
        pi["status"] = "requires_payment_method"
        return error(402, "card_error", "Your card was declined.", code="card_declined", decline_code="generic_decline", payment_intent=pi)
    pi["status"] = "requires_capture"
    AUTHORIZATIONS.append((pi["id"], pi["metadata"].get("idempotency_key", ""), request.headers.get("Idempotency-Key", ""),
                           round(time.monotonic() - STARTED, 3)))
    return web.json_response(pi)


def step(new_status):
    async def handler(request):
        await delay()
        pi = INTENTS.get(request.match_info["id"])
        if pi is None:
            return error(404, "invalid_request_error", "No such payment_intent")
        pi["status"] = new_status
        return web.json_response(pi)
    return handler


async def retrieve(request):
    await delay()
    pi = INTENTS.get(request.match_info["id"])
    return web.json_response(pi) if pi else error(404, "invalid_request_error", "No such payment_intent")


async def listing(request):
    return web.json_response({"object": "list", "data": list(INTENTS.values())})


async def authorizations(request):
    """Tab-separated: intent id, checkout key, confirm's Idempotency-Key,
    seconds since start, the intent's status now."""
    lines = [f"{pi}\t{key}\t{idem}\t{t}\t{INTENTS[pi]['status']}" for pi, key, idem, t in AUTHORIZATIONS]
    return web.Response(text="\n".join(lines) + ("\n" if lines else ""))


async def counts(request):
    return web.json_response({**COUNTS, "intents": len(INTENTS), "authorizations": len(AUTHORIZATIONS)})


app = web.Application(middlewares=[idempotency])
app.add_routes([
    web.post("/v1/payment_intents", create),
    web.get("/v1/payment_intents", listing),
    web.get("/v1/payment_intents/{id}", retrieve),
    web.post("/v1/payment_intents/{id}/confirm", confirm),
    web.post("/v1/payment_intents/{id}/capture", step("succeeded")),
    web.post("/v1/payment_intents/{id}/cancel", step("canceled")),
    web.get("/_fake/authorizations", authorizations),
    web.get("/_fake/counts", counts),
])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
