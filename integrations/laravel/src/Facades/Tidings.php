<?php

namespace Tidings\Laravel\Facades;

use Illuminate\Support\Facades\Facade;

/**
 * @method static array publish(string|int $userId, string $message, array $fields = [])
 * @method static array publishMany(array $userIds, string $message, array $fields = [])
 * @method static string token(string|int $userId, int $ttl = 3600)
 * @method static string url()
 *
 * @see \Tidings\Laravel\Tidings
 */
class Tidings extends Facade
{
    protected static function getFacadeAccessor()
    {
        return \Tidings\Laravel\Tidings::class;
    }
}
