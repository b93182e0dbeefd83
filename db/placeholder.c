/* placeholder so the library has a member until db/ lands */
int pw_db_placeholder_(void);
int pw_db_placeholder_(void)
{
    return 0;
}
