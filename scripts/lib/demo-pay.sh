#!/usr/bin/env bash
# The demo's paid show, step by step: hold, checkout, the provider's payment, the
# booking and its audit trail. Run by `scripts/demo.sh pay` against a running demo,
# and by `scripts/demo.sh --check`. Fails on any unexpected answer.
#
#   scripts/lib/demo-pay.sh BIN_DIR DEMO_WORK_DIR API   (BIN_DIR: the built mint-token and pay-sim)
set -euo pipefail
bin=$1 work=$2 api=$3
mint() { "$bin/mint-token" --secret-file "$work/jwt-secret" --sub "$1" ${2:+--roles "$2"}; }
token=$(mint gala-guest)
staff=$(mint gala-usher staff)
step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
# curl that fails on an error answer, showing it.
call() {
  local out
  out=$(curl -sS --fail-with-body --max-time 10 "$@") || { echo "$out" >&2; return 1; }
  echo "$out"
}

echo "The paid show $api (payments: provider \"sim\", played by pay-sim)."
echo "TOKEN is a guest's token, STAFF an usher's (scripts/demo.sh token USER [ROLES])."

step "1. Hold two seats, best available"
show "curl -X POST \$API/holds -H \"Authorization: Bearer \$TOKEN\" -d '{\"best\": {\"quantity\": 2}}'"
hold=$(call -X POST "$api/holds" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"best": {"quantity": 2}}')
echo "$hold"
id=$(jq -er .id <<<"$hold")

step "2. Check out: the server prices the seats and keeps them for the payment window"
show "curl -X POST \$API/holds/$id/checkout -H \"Authorization: Bearer \$TOKEN\""
checkout=$(call -X POST "$api/holds/$id/checkout" -H "Authorization: Bearer $token")
echo "$checkout"
intent=$(jq -er .intent.id <<<"$checkout")
amount=$(jq -er .intent.amountMinor <<<"$checkout")
currency=$(jq -er .intent.currency <<<"$checkout")

step "3. The guest cannot confirm by themselves: this show confirms on the provider's word"
show "curl -X POST \$API/holds/$id/confirm -H \"Authorization: Bearer \$TOKEN\" -d '{\"paymentReference\": \"trust-me\"}'"
refused=$(curl -sS --max-time 10 -w '\n%{http_code}' -X POST "$api/holds/$id/confirm" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"paymentReference": "trust-me"}')
echo "$refused"
[ "$(tail -n 1 <<<"$refused")" = 403 ] || { echo "demo: expected 403 payment_required" >&2; exit 1; }

step "4. The provider reports the payment: pay-sim signs the callback with the provider secret"
show "pay-sim --api \$API --provider sim --secret-file $work/payment-secret --intent $intent --amount $amount --currency $currency"
paid=$("$bin/pay-sim" --api "$api" --provider sim --secret-file "$work/payment-secret" \
  --intent "$intent" --amount "$amount" --currency "$currency")
echo "$paid"
[ "${paid%% *}" = 200 ] || { echo "demo: the payment callback was not accepted" >&2; exit 1; }
reference=$(jq -er .reference <<<"${paid#* }")

step "5. The booking"
show "curl \$API/bookings/$reference -H \"Authorization: Bearer \$TOKEN\""
call "$api/bookings/$reference" -H "Authorization: Bearer $token"

step "6. Its audit trail (staff): who moved it from which state to which, and when"
show "curl \$API/bookings/$reference/history -H \"Authorization: Bearer \$STAFF\""
call "$api/bookings/$reference/history" -H "Authorization: Bearer $staff"
echo
echo "Paid: booking $reference ($amount minor units of $currency)."
