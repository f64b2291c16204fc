-- wrk: POST /api/v1/boards/{id}/tasks round-robin over BOARD_IDS (comma separated), as
-- the admin TOKEN; used by benches/compare.sh.
local boards, n = {}, 0
for id in string.gmatch(os.getenv("BOARD_IDS") or "", "[^,]+") do boards[#boards + 1] = id end
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or ""),
}
request = function()
  n = n + 1
  local board = boards[(n % #boards) + 1]
  return wrk.format("POST", "/api/v1/boards/" .. board .. "/tasks", headers,
    '{"title":"bench task ' .. n .. '","description":"written by wrk"}')
end
