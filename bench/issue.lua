-- POST /api/v1/licenses (issue) as an admin key: signs, inserts, audits.
package.path = package.path .. ";bench/?.lua"
local report = require("wrk_report")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY")
wrk.body = '{"customer_id": "DEMO-0000001", "module_name": "biz4a_payroll_drc", ' ..
  '"allowed_major_versions": ["17", "18"], "license_type": "subscription", "duration_days": 365}'
done = report.done
