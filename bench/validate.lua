-- POST /api/v1/licenses/validate with a rotating set of real tokens (BENCH_TOKENS file).
package.path = package.path .. ";bench/?.lua"
local report = require("wrk_report")
local bodies = {}

local path = os.getenv("BENCH_TOKENS")
for line in io.lines(path) do
  local token, module = line:match("([^ ]+) ([^ ]+)")
  bodies[#bodies + 1] = string.format(
    '{"token": "%s", "module_name": "%s", "odoo_version": "17.0"}', token, module)
end

local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end

done = report.done
