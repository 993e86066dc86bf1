-- POST /api/v1/licenses/activate: heartbeats of already activated instances, in rotation
-- (BENCH_INSTANCES file: "token module db_uuid domain" per line, each activated once).
package.path = package.path .. ";bench/?.lua"
local report = require("wrk_report")
local bodies = {}

local path = os.getenv("BENCH_INSTANCES")
for line in io.lines(path) do
  local token, module, db_uuid, domain = line:match("([^ ]+) ([^ ]+) ([^ ]+) ([^ ]+)")
  bodies[#bodies + 1] = string.format(
    '{"token": "%s", "module_name": "%s", "odoo_version": "17.0", ' ..
    '"instance_db_uuid": "%s", "instance_domain": "%s"}', token, module, db_uuid, domain)
end

local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
end

done = report.done
