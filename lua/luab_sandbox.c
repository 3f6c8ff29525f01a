/*
 * luab_sandbox.c — the environment of a script: which standard libraries
 * it gets, and the hearth module.
 *
 * Always: the base functions (without dofile and loadfile; load accepts
 * text chunks only), string (without string.dump; patterns and string.rep
 * from luab_pattern.c), table (bounded insert/remove/move), math, utf8,
 * coroutine (wrapped by prelude.lua so that hearth's waits pass through a
 * script's own coroutines), and os.time/clock/date/difftime.
 * With the config's lua.allow.*: io (and dofile/loadfile, text only), all
 * of os, debug (without sethook, which would lift the limits), package and
 * require. setmetatable refuses __gc: finalizers run with hooks off, where
 * no limit could stop them.
 */
#include "luab_impl.h"

#include <string.h>

/* Opens library `name`, also as a global of that name when `global`; the
 * module stays on the stack. */
static void open_lib(lua_State *L, const char *name, lua_CFunction open, bool global)
{
    luaL_requiref(L, name, open, global);
}

static void set_nil(lua_State *L, int t, const char *field)
{
    lua_pushnil(L);
    lua_setfield(L, t, field);
}

int luab_sandbox_open(lua_State *L)
{
    struct luab_run *r = luab_run_of(L);
    const struct luab_rt_params *p = &r->rt->p;

    open_lib(L, LUA_GNAME, luaopen_base, true);
    int g = lua_gettop(L);
    set_nil(L, g, "dofile"); /* prelude.lua makes a text-only one when io is allowed */
    if (!p->allow_io)
        set_nil(L, g, "loadfile"); /* else wrapped by prelude.lua: text only */

    open_lib(L, LUA_STRLIBNAME, luaopen_string, true);
    open_lib(L, LUA_TABLIBNAME, luaopen_table, true);
    luab_pattern_install(L, -2, -1);
    set_nil(L, lua_gettop(L) - 1, "dump");
    lua_pop(L, 2);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math, true);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8, true);
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine, true);
    lua_pop(L, 3);

    open_lib(L, LUA_OSLIBNAME, luaopen_os, p->allow_os);
    if (!p->allow_os) {
        static const char *const keep[] = {"time", "clock", "date", "difftime", NULL};
        lua_createtable(L, 0, 4);
        for (const char *const *k = keep; *k; k++) {
            lua_getfield(L, -2, *k);
            lua_setfield(L, -2, *k);
        }
        lua_setglobal(L, "os");
    }
    lua_pop(L, 1);
    if (p->allow_io) {
        open_lib(L, LUA_IOLIBNAME, luaopen_io, true);
        lua_pop(L, 1);
    }
    if (p->allow_debug) {
        open_lib(L, LUA_DBLIBNAME, luaopen_debug, true);
        set_nil(L, lua_gettop(L), "sethook");
        lua_pop(L, 1);
    }
    if (p->allow_modules) {
        open_lib(L, LUA_LOADLIBNAME, luaopen_package, true);
        lua_pop(L, 1);
    }

    /* the hearth module: prelude.lua over the C primitives */
    if (luaL_loadbufferx(L, luab_src_prelude, luab_src_prelude_len, "=hearth", "t") != LUA_OK)
        return lua_error(L);
    luab_hearth_push_primitives(L);
    lua_createtable(L, 0, 8);
    luab_json_open(L);
    lua_setfield(L, -2, "json");
    lua_pushboolean(L, p->allow_io);
    lua_setfield(L, -2, "allow_io");
    lua_call(L, 1, 1);
    lua_setglobal(L, "hearth");
    lua_settop(L, 0);
    return 0;
}
