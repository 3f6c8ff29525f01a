/*
 * luab_json.c — Lua values and JSON (jansson): hearth.json, and the
 * conversions the rest of the runtime uses for requests, tool arguments
 * and results.
 *
 * Lua → JSON never raises: it only reads the Lua value (strings by
 * pointer, numbers by value, tables with lua_next and raw gets; number keys
 * are formatted by hand, never converted in place), so a jansson value
 * being built cannot leak. Tables become arrays when they carry the array
 * marker (hearth.json.array, or decoded from an array) or when their keys
 * are exactly 1..n; otherwise objects (string keys, integer keys written in
 * decimal); an empty unmarked table is an object. Nesting deeper than 100
 * is refused (this also stops cycles), and so is a value of more than 1M
 * nodes counting shared subtables each time, so the conversion is bounded.
 *
 * JSON → Lua raises only on memory errors; arrays and objects get their
 * marker metatables, so decoding and encoding again round-trips, empty ones
 * included; null is hearth.json.null (a light userdata).
 */
#include "luab_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 100
#define MAX_NODES (1L << 20) /* values converted per call: a table that shares its
                                subtables ({t, t} nested) would take 2^depth */

static char array_key, object_key, null_value;

/* ---- boxes --------------------------------------------------------------------- */

static int box_gc(lua_State *L)
{
    struct luab_box *b = lua_touserdata(L, 1);
    if (b) {
        json_decref(b->json);
        free(b->text);
        b->json = NULL;
        b->text = NULL;
    }
    return 0;
}

struct luab_box *luab_box_push(lua_State *L)
{
    struct luab_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->json = NULL;
    b->text = NULL;
    if (luaL_newmetatable(L, "hearth.box")) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* ---- Lua → JSON ------------------------------------------------------------------- */

/* Is the metatable of the value at idx the marker `key`? Needs 2 stack slots. */
static bool has_marker(lua_State *L, int idx, void *key)
{
    if (!lua_getmetatable(L, idx))
        return false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static json_t *conv(lua_State *L, int idx, int depth, bool lenient, const char **why,
                    long *nodes);

static json_t *conv_table(lua_State *L, int idx, int depth, bool lenient, const char **why,
                          long *nodes)
{
    if (depth > MAX_DEPTH) {
        *why = "tables nested too deeply (or a table that contains itself)";
        return NULL;
    }
    if (!lua_checkstack(L, 4)) {
        *why = "out of Lua stack";
        return NULL;
    }
    bool arr = has_marker(L, idx, &array_key);
    bool obj = !arr && has_marker(L, idx, &object_key);
    if (!arr && !obj) {
        /* keys exactly 1..n: an array */
        lua_Integer count = 0, max = 0;
        bool ints = true;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
            if (ints && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
                lua_Integer k = lua_tointeger(L, -1);
                if (k > max)
                    max = k;
            } else {
                ints = false;
            }
        }
        arr = count > 0 && ints && max == count;
    }
    if (arr) {
        json_t *a = json_array();
        lua_Unsigned n = lua_rawlen(L, idx);
        for (lua_Unsigned i = 1; a && i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            json_t *v = conv(L, lua_gettop(L), depth + 1, lenient, why, nodes);
            lua_pop(L, 1);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        if (!a)
            *why = "out of memory";
        return a;
    }
    json_t *o = json_object();
    if (!o) {
        *why = "out of memory";
        return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char num[32];
        const char *key;
        size_t klen;
        if (lua_type(L, -2) == LUA_TSTRING) {
            key = lua_tolstring(L, -2, &klen); /* a string: no conversion */
        } else if (lua_isinteger(L, -2)) {
            klen = (size_t)snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -2));
            key = num;
        } else if (lenient) {
            lua_pop(L, 1); /* the value; the key stays for lua_next */
            continue;
        } else {
            lua_pop(L, 2);
            *why = "table keys must be strings or integers";
            json_decref(o);
            return NULL;
        }
        json_t *v = conv(L, lua_gettop(L), depth + 1, lenient, why, nodes);
        lua_pop(L, 1);
        if (!v || strlen(key) != klen || json_object_setn_new(o, key, klen, v) < 0) {
            if (v && !*why)
                *why = "table keys must be UTF-8 text without NUL";
            if (v && lenient) {
                json_decref(v);
                continue;
            }
            json_decref(v);
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *conv(lua_State *L, int idx, int depth, bool lenient, const char **why,
                    long *nodes)
{
    if (++*nodes > MAX_NODES) {
        *why = "a value too large to convert (more than 1M parts)";
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        else {
            double d = lua_tonumber(L, idx);
            if (isfinite(d))
                return json_real(d);
            if (lenient)
                return json_null();
            *why = "NaN and infinities have no JSON form";
            return NULL;
        }
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json_t *j = json_stringn(s, len);
        if (!j) {
            if (lenient)
                return json_string("(text that is not UTF-8)");
            *why = "a string that is not valid UTF-8";
        }
        return j;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_value)
            return json_null();
        break;
    case LUA_TTABLE:
        return conv_table(L, lua_absindex(L, idx), depth, lenient, why, nodes);
    default:
        break;
    }
    if (lenient)
        return json_string(lua_typename(L, lua_type(L, idx)));
    *why = lua_type(L, idx) == LUA_TFUNCTION ? "functions have no JSON form"
                                              : "a value that has no JSON form (userdata, thread)";
    return NULL;
}

json_t *luab_to_json(lua_State *L, int idx, bool lenient, const char **why)
{
    const char *dummy = NULL;
    if (!why)
        why = &dummy;
    *why = NULL;
    long nodes = 0;
    return conv(L, lua_absindex(L, idx), 0, lenient, why, &nodes);
}

/* ---- JSON → Lua ----------------------------------------------------------------------- */

static void push(lua_State *L, const json_t *j, int depth)
{
    luaL_checkstack(L, 4, "JSON nested too deeply");
    if (depth > 2 * MAX_DEPTH)
        luaL_error(L, "JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            push(L, v, depth + 1);
            lua_setfield(L, -2, k);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &object_key);
        lua_setmetatable(L, -2);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push(L, json_array_get(j, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_key);
        lua_setmetatable(L, -2);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(j));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(j));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    case JSON_NULL:
    default:
        lua_pushlightuserdata(L, &null_value);
        break;
    }
}

void luab_push_json(lua_State *L, const json_t *j)
{
    if (!j)
        lua_pushnil(L);
    else
        push(L, j, 0);
}

/* ---- hearth.json ---------------------------------------------------------------------- */

/* json.encode(value [, {pretty = true, sort_keys = true}]) -> text */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "pretty");
        if (lua_toboolean(L, -1))
            flags = JSON_ENCODE_ANY | JSON_INDENT(2);
        lua_getfield(L, 2, "sort_keys");
        if (lua_toboolean(L, -1))
            flags |= JSON_SORT_KEYS;
        lua_pop(L, 2);
    }
    struct luab_box *b = luab_box_push(L);
    const char *why = NULL;
    b->json = luab_to_json(L, 1, false, &why);
    if (!b->json)
        return luaL_error(L, "json.encode: %s", why ? why : "out of memory");
    b->text = json_dumps(b->json, flags);
    if (!b->text)
        return luaL_error(L, "json.encode: out of memory");
    lua_pushstring(L, b->text);
    return 1;
}

/* json.decode(text) -> value | nil, message */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct luab_box *b = luab_box_push(L);
    json_error_t je;
    b->json = json_loadb(s, len, JSON_DECODE_ANY, &je);
    if (!b->json) {
        lua_pushnil(L);
        lua_pushfstring(L, "%d:%d: %s", je.line, je.column, je.text);
        return 2;
    }
    luab_push_json(L, b->json);
    return 1;
}

/* json.array(t) / json.object(t): marks t (or a new table). */
static int mark(lua_State *L, void *key)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_array(lua_State *L)
{
    return mark(L, &array_key);
}

static int l_object(lua_State *L)
{
    return mark(L, &object_key);
}

/* json.is_array(t) */
static int l_is_array(lua_State *L)
{
    lua_pushboolean(L, lua_istable(L, 1) && has_marker(L, 1, &array_key));
    return 1;
}

void luab_json_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode},     {"array", l_array},
        {"object", l_object}, {"is_array", l_is_array}, {NULL, NULL},
    };
    /* the markers: plain metatables, shared by every marked table */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &array_key);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "json.object");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &object_key);
    luaL_setfuncs(L, fns, 0);
    lua_pushlightuserdata(L, &null_value);
    lua_setfield(L, -2, "null");
}
